import importlib
import inspect

import pytest

import embgraft
from embgraft import errors
from helpers.imports import imported_by


def test_every_error_type_is_exported():
    defined = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)
               and v.__module__ == errors.__name__}
    assert defined <= set(embgraft.__all__)


def test_every_public_name_is_defined_where_the_table_says():
    for name, module in embgraft._EXPORTS.items():
        obj = getattr(embgraft, name)
        assert obj is getattr(importlib.import_module(module), name), name
        assert inspect.isclass(obj) or inspect.isfunction(obj), name
        assert obj.__module__ == module, f"{name} is defined in {obj.__module__}, the table says {module}"
    assert embgraft.__version__ == importlib.import_module("embgraft.version").__version__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_name"):
        embgraft.no_such_name  # noqa: B018


def test_the_package_face_imports_no_stage():
    """``import embgraft`` is cheap: the names resolve on first use."""
    assert imported_by("import embgraft", ["embgraft.grafting", "embgraft.training", "torch", "numpy"]) == []
