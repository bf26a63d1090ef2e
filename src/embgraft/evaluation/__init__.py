"""Did the graft help: metrics and the errors table (``metrics``), paired tests and summaries
(``stats``), embedding drift (``drift``), ``embgraft evaluate`` (``run``), set-ups against random
init and a TF-IDF baseline (``compare``), cross-validation (``cv``), plots and the HTML report."""
