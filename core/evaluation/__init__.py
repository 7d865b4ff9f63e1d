"""The evaluation path: the protocol of the published table, NME reports, their
figures and the HTML pages to look at them."""
