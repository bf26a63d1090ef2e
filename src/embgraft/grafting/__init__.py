"""Sources -> vocabulary -> rows: ``GraftConfig`` (``config``), the per-row cascade exact ->
normalised -> composed -> initialised (``cascade``), composition (``compose``), n-gram and word
rows (``ngrams``) and ``GraftResult`` with the graft directory's layout (``result``)."""
