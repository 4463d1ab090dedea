"""The book's tooling: reproducing it (``reproduce``: grid + papermill chapters), the facts a chapter
glues about its run (``chapter_facts``), the landing finding, the execution report, the offline site
walk (``site_check``) and the PDF (``pdf``). Nothing here changes a number."""
