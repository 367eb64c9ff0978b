import os

from hypothesis import Phase, settings

# CI runs a fixed, derandomized set of examples; HYPOTHESIS_PROFILE=thorough explores more.
settings.register_profile("ci", max_examples=6, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", max_examples=60, deadline=None)
# The platform harness on a device: the CI examples, but a failure is reported as found, without shrinking (which
# can take minutes for a failing parity test on a slow step).
settings.register_profile("platform", max_examples=6, deadline=None, derandomize=True, print_blob=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
