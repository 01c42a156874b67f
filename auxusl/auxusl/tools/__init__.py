"""Command-line tools of the package (``python -m auxusl.tools.make_aux``)."""
