"""Every actor module, imported by the worker. Areas add their modules here."""
