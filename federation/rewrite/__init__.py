"""The query pipeline (``pipeline.py``) and its passes, one module each."""
