import os

from hypothesis import settings

# CI runs a fixed, derandomized set of examples; HYPOTHESIS_PROFILE=thorough explores more.
settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
