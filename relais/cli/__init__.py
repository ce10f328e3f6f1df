"""The ``relais`` command line."""
