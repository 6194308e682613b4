"""Sphinx configuration: furo theme, autodoc + napoleon (numpydoc style), sphinx-gallery."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sphinx_gallery.sorting import FileNameSortKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import soundanomaly

project = "soundanomaly"
author = "soundanomaly developers"
copyright = "2026, soundanomaly developers"
release = version = soundanomaly.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "sphinx_gallery.gen_gallery",
]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_param = False  # types like "path" or "int > 0" stay text, not ambiguous cross-references
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_mock_imports: list[str] = []

# The docs build offline (CI has no network), so intersphinx inventories are
# only fetched when asked: SOUNDANOMALY_DOCS_INTERSPHINX=1 links numpy, librosa and boto3.
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "librosa": ("https://librosa.org/doc/latest", None),
        "boto3": ("https://boto3.amazonaws.com/v1/documentation/api/latest", None),
    }
    if os.environ.get("SOUNDANOMALY_DOCS_INTERSPHINX") == "1"
    else {}
)

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": FileNameSortKey,
    "abort_on_example_error": True,
    "show_memory": False,
    "download_all_examples": False,
    "remove_config_comments": True,
}

html_theme = "furo"
html_title = f"soundanomaly {release}"
exclude_patterns = ["_build"]
suppress_warnings = ["config.cache"]
