"""Starts localstripe (the fake Stripe server the payment tests talk to) without its save to
disk: it pickles its whole store after every write, so each write costs the size of the store
and a test run grows quadratic (200 ms a write after a few thousand objects). Tests need no
persistence; everything else is localstripe as published."""

import sys

from localstripe import resources
from localstripe.server import start

resources.Store.dump_to_disk = lambda self: None
sys.argv[0] = "localstripe"
sys.exit(start())
