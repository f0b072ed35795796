"""The feeds: built from the store's articles (:mod:`.build`, pure), kept current on
this node (:mod:`.shelf`), copied to disk for a web server (:mod:`.files`) and
announced to a WebSub hub (:mod:`.websub`)."""
