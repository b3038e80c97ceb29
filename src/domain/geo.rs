//! Points on the WGS 84 sphere, great-circle distance and search bounding boxes.

use super::validation::Violations;

/// Mean Earth radius in km (IUGG). PostGIS uses the same value for its spherical distances,
/// so both backends agree to well within the contract's 0.5 %.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A valid coordinate pair: the fields are private and [`GeoPoint::new`] checks the ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    latitude: f64,
    longitude: f64,
}

impl GeoPoint {
    pub fn new(latitude: f64, longitude: f64) -> Result<Self, GeoError> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(GeoError::Latitude);
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(GeoError::Longitude);
        }
        Ok(Self {
            latitude,
            longitude,
        })
    }

    /// Like [`GeoPoint::new`], recording every broken range at the `latitude` and `longitude`
    /// fields (under `prefix`).
    pub fn parse(
        violations: &mut Violations,
        prefix: &[&str],
        latitude: f64,
        longitude: f64,
    ) -> Option<Self> {
        let at = |field: &'static str| [prefix, &[field]].concat();
        if !(-90.0..=90.0).contains(&latitude) {
            violations.push(&at("latitude"), GeoError::Latitude.to_string());
        }
        if !(-180.0..=180.0).contains(&longitude) {
            violations.push(&at("longitude"), GeoError::Longitude.to_string());
        }
        Self::new(latitude, longitude).ok()
    }

    pub fn latitude(&self) -> f64 {
        self.latitude
    }

    pub fn longitude(&self) -> f64 {
        self.longitude
    }

    /// Great-circle distance in km (haversine, numerically stable for small distances).
    pub fn distance_km(&self, other: &GeoPoint) -> f64 {
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }

    /// The point reached by travelling `distance_km` from here on initial `bearing_deg`.
    pub fn destination(&self, distance_km: f64, bearing_deg: f64) -> GeoPoint {
        let angular = distance_km / EARTH_RADIUS_KM;
        let bearing = bearing_deg.to_radians();
        let lat1 = self.latitude.to_radians();
        let lon1 = self.longitude.to_radians();
        let lat2 = (lat1.sin() * angular.cos() + lat1.cos() * angular.sin() * bearing.cos()).asin();
        let lon2 = lon1
            + (bearing.sin() * angular.sin() * lat1.cos())
                .atan2(angular.cos() - lat1.sin() * lat2.sin());
        let longitude = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        GeoPoint {
            latitude: lat2.to_degrees(),
            longitude,
        }
    }

    /// Latitude/longitude boxes that together contain every point within `radius_km`.
    ///
    /// One box normally; two when the circle crosses the antimeridian; a full longitude band
    /// when it reaches a pole (then every meridian passes through the circle).
    pub fn bounding_boxes(&self, radius_km: f64) -> Vec<BoundingBox> {
        let angular = radius_km / EARTH_RADIUS_KM;
        let lat = self.latitude.to_radians();
        let min_lat = (lat - angular).to_degrees();
        let max_lat = (lat + angular).to_degrees();
        if min_lat <= -90.0 || max_lat >= 90.0 || angular >= std::f64::consts::FRAC_PI_2 {
            return vec![BoundingBox {
                min_lat: min_lat.max(-90.0),
                max_lat: max_lat.min(90.0),
                min_lon: -180.0,
                max_lon: 180.0,
            }];
        }
        // Widest longitude offset of the circle (reached north or south of the centre).
        let delta_lon = (angular.sin() / lat.cos()).min(1.0).asin().to_degrees();
        let min_lon = self.longitude - delta_lon;
        let max_lon = self.longitude + delta_lon;
        let band = |min_lon, max_lon| BoundingBox {
            min_lat,
            max_lat,
            min_lon,
            max_lon,
        };
        if min_lon < -180.0 {
            vec![band(min_lon + 360.0, 180.0), band(-180.0, max_lon)]
        } else if max_lon > 180.0 {
            vec![band(min_lon, 180.0), band(-180.0, max_lon - 360.0)]
        } else {
            vec![band(min_lon, max_lon)]
        }
    }
}

/// A search radius within the contract's 1–500 km.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadiusKm(f64);

impl RadiusKm {
    pub const MIN: f64 = 1.0;
    pub const MAX: f64 = 500.0;
    pub const RULE: &str = "must be between 1 and 500";

    pub fn new(km: f64) -> Result<Self, &'static str> {
        if (Self::MIN..=Self::MAX).contains(&km) {
            Ok(Self(km))
        } else {
            Err(Self::RULE)
        }
    }

    pub fn km(self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    pub min_lat: f64,
    pub max_lat: f64,
    pub min_lon: f64,
    pub max_lon: f64,
}

impl BoundingBox {
    pub fn contains(&self, point: &GeoPoint) -> bool {
        (self.min_lat..=self.max_lat).contains(&point.latitude)
            && (self.min_lon..=self.max_lon).contains(&point.longitude)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    #[error("must be between -90 and 90")]
    Latitude,
    #[error("must be between -180 and 180")]
    Longitude,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(latitude: f64, longitude: f64) -> GeoPoint {
        GeoPoint::new(latitude, longitude).unwrap()
    }

    #[test]
    fn rejects_out_of_range_coordinates() {
        assert_eq!(GeoPoint::new(90.1, 0.0), Err(GeoError::Latitude));
        assert_eq!(GeoPoint::new(0.0, -180.5), Err(GeoError::Longitude));
        assert_eq!(GeoPoint::new(f64::NAN, 0.0), Err(GeoError::Latitude));
    }

    #[test]
    fn parse_reports_both_coordinates() {
        let mut violations = Violations::new();
        assert!(GeoPoint::parse(&mut violations, &["venue"], 91.0, 181.0).is_none());
        assert_eq!(violations.iter().count(), 2);
        assert_eq!(RadiusKm::new(0.5), Err(RadiusKm::RULE));
        assert_eq!(RadiusKm::new(500.0).map(RadiusKm::km), Ok(500.0));
        assert!(RadiusKm::new(f64::NAN).is_err());
    }

    #[test]
    fn distance_matches_known_values() {
        // Lagos to Abuja: about 524 km on the sphere.
        let lagos = point(6.5244, 3.3792);
        let abuja = point(9.0765, 7.3986);
        let km = lagos.distance_km(&abuja);
        assert!((km - 524.0).abs() < 3.0, "{km}");
        assert_eq!(lagos.distance_km(&lagos), 0.0);
        // One degree of latitude.
        assert!((point(0.0, 0.0).distance_km(&point(1.0, 0.0)) - 111.195).abs() < 0.01);
    }

    #[test]
    fn destination_round_trips_distance() {
        let origin = point(6.52, 3.38);
        for (km, bearing) in [(1.0, 0.0), (49.9, 90.0), (50.1, 200.0), (400.0, 315.0)] {
            let there = origin.destination(km, bearing);
            assert!((origin.distance_km(&there) - km).abs() < 1e-6);
        }
    }

    #[test]
    fn boxes_cover_the_circle_across_the_antimeridian() {
        let centre = point(0.0, 179.95);
        let boxes = centre.bounding_boxes(50.0);
        assert_eq!(boxes.len(), 2);
        let across = point(0.0, -179.95);
        assert!(centre.distance_km(&across) < 12.0);
        assert!(boxes.iter().any(|b| b.contains(&across)));
    }

    #[test]
    fn boxes_reach_every_meridian_near_a_pole() {
        let centre = point(89.9, 10.0);
        let boxes = centre.bounding_boxes(50.0);
        assert_eq!(boxes.len(), 1);
        let other_side = point(89.9, -170.0);
        assert!(centre.distance_km(&other_side) < 50.0);
        assert!(boxes[0].contains(&other_side));
    }

    #[test]
    fn boxes_contain_points_on_the_circle_edge() {
        for centre in [point(60.0, 20.0), point(-45.0, -179.0), point(0.0, 0.0)] {
            let boxes = centre.bounding_boxes(100.0);
            for bearing in (0..360).step_by(5) {
                let edge = centre.destination(99.999, f64::from(bearing));
                assert!(
                    boxes.iter().any(|b| b.contains(&edge)),
                    "{centre:?} bearing {bearing} -> {edge:?}"
                );
            }
        }
    }
}
