# JupyterLab's settings for this book, read when JUPYTER_CONFIG_PATH names this folder
# (tools/lab.py sets it; tests/test_jupyterlab.py uses the same files).
c = get_config()  # noqa: F821 - traitlets injects get_config into config files

# chapters are jupytext percent scripts: the contents manager opens them as notebooks
c.ServerApp.contents_manager_class = "jupytext.TextFileContentsManager"
# and writes a saved chapter back with only the header it already carries, so that a save
# changes the code a reader changed and nothing else. This lives here, not in a
# jupytext.toml, because tools/refresh_notebooks.py's jupytext would read that file too and
# write the filter into every reference notebook.
c.JupytextConfiguration.notebook_metadata_filter = (
    "jupytext.text_representation.extension,jupytext.text_representation.format_name,"
    "kernelspec,-all"
)
