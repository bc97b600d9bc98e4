"""Shared test configuration: Hypothesis profiles, and the check of a CLI error (``cli_error``).

``ci`` (the default) is derandomized so a run is reproducible; ``dev`` explores more examples.
Select with ``HYPOTHESIS_PROFILE=dev``.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv, *needles)``: runs the CLI, which must exit 2 with one ``error:`` line on
    stderr (no traceback) containing every needle; returns that line."""
    from prodigy_sim.cli import main

    def check(argv, *needles):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "error:" in err, err
        for needle in needles:
            assert needle in err, err
        return err

    return check
