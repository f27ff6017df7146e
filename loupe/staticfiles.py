"""How Loupe's static files are collected and named: one file from the plotly wheel, hashed names everywhere.

`collectstatic` (run by `platform/demo.sh`, and by any deployment) writes every file under a name with its
content hash and a gzip copy beside it; WhiteNoise then serves the hashed names compressed and cached for a
year (`Cache-Control: max-age=315360000, immutable`). plotly.min.js is 4.8 MB as shipped and 1.5 MB gzipped.
"""

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage that also hashes the names inside ES module imports.

    Loupe's pages load modules that import each other (`import { api } from "./api.js"`): rewritten to
    "./api.<hash>.js", a page never runs a new module with a stale copy of one it imports from a browser's cache.
    """

    support_js_module_import_aggregation = True


class PlotlyFinder(BaseFinder):
    """Finds `vendor/plotly/plotly.min.js` in the installed plotly wheel, located without importing plotly.

    Only that file: the wheel's folder also holds a 5 MB widget bundle and sample data that no page uses, which
    would otherwise be collected, compressed and served.
    """

    prefix = "vendor/plotly"
    file_name = "plotly.min.js"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        spec = importlib.util.find_spec("plotly")
        folder = Path(spec.origin).parent / "package_data" if spec and spec.origin else None
        self.storage = None
        if folder is not None and (folder / self.file_name).is_file():
            self.storage = FileSystemStorage(location=folder)
            self.storage.prefix = self.prefix

    def find(self, path: str, find_all: bool = False, **kwargs) -> str | list[str] | None:
        if self.storage is None or path != f"{self.prefix}/{self.file_name}":
            return [] if find_all else None
        found = self.storage.path(self.file_name)
        return [found] if find_all else found

    def list(self, ignore_patterns):
        if self.storage is not None:
            yield self.file_name, self.storage
