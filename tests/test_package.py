import subprocess
import sys

import embgraft
from embgraft import errors


def test_every_error_type_is_exported():
    defined = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
               and v.__module__ == errors.__name__}
    assert defined <= set(embgraft.__all__)
    for name in defined | {"Provenance", "Source", "extend", "graft", "CheckpointError"}:
        assert getattr(embgraft, name) is not None


def test_graft_and_extend_stay_callable_after_their_modules_are_imported():
    code = (
        "import embgraft.graft, embgraft.extend, embgraft.graft as g\n"
        "from embgraft import graft, extend, Provenance\n"
        "from embgraft.graft import GraftConfig\n"
        "assert callable(graft) and callable(extend)\n"
        "assert g.GraftConfig is GraftConfig\n"
        "import inspect\n"
        "try:\n    graft(None, [])\nexcept Exception as e:\n    print(type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out == "ConfigError\n"  # the function ran: "graft needs at least one source"
