"""Root conftest: makes ``torch`` available to the docstring examples run by ``--doctest-modules``."""
import pytest
import torch

import resamplers


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["resamplers"] = resamplers
