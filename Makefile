# Shortcuts; every target is a plain command you can also run yourself.
.PHONY: help up down logs test run migrate bench lint

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

up: ## build and start PostGIS, the API (port 8000) and the expiry worker
	docker compose up --build -d

down: ## stop the compose stack (data stays in the pgdata volume)
	docker compose down

logs: ## follow the compose logs
	docker compose logs -f

test: ## run the tests (SQLite; PostgreSQL too when TEST_DATABASE_URL is set)
	cargo test

run: ## run locally on SQLite with the docs at http://127.0.0.1:8000/docs
	cargo run --release

migrate: ## apply the migrations to DATABASE_URL and exit
	cargo run --release -- migrate

bench: ## flash-sale and search load on SQLite (see BENCHMARKS.md for all scenarios)
	cargo bench --bench loadgen -- flash-sale --backend sqlite
	cargo bench --bench loadgen -- search --backend sqlite

lint: ## formatting and clippy, as CI runs them
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
