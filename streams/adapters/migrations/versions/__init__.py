"""One module per schema revision, oldest first by number: `NNNN_what_it_does.py`."""
