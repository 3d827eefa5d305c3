"""The Astro layout's way in: Airflow imports every file of its plugins folder. Where the package is
installed (``make install``, the Dockerfile, ``pip install kandji-oomnitza-airflow``), its
``airflow.plugins`` entry point registers the plugin and this file defines none (Airflow reports a plugin
registered twice as an import error); where only the files were copied, this file registers it."""

from importlib.metadata import entry_points

if not any(ep.name == "kandji_oomnitza" for ep in entry_points(group="airflow.plugins")):
    from kandji_oomnitza.ui.plugin import KandjiOomnitzaPlugin  # noqa: F401 - the loader finds it here
