"""Device models for relaxsim: slow weight elements, fast active elements and switches.

Installed as ``relaxsim.devices``. The ideal network needs no device; the device records and the
preset library live here.
"""
