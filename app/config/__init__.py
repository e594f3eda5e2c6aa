"""Reading, checking and showing passgate's ``PASSGATE_*`` settings (the model is ``app.settings``).

- ``fields``: value shapes the settings share (lists from the environment, CIDRs, URLs, keys);
- ``providers``: one gateway upstream as configured;
- ``problems``: a bad setting as one line, and ``SettingsError``;
- ``deployment``: what a production process refuses to start with;
- ``show``: the effective settings with secrets masked (``passgate config``).
"""
