"""The feeds: built from the store's articles (:mod:`.build`, pure, from entries prepared
by :mod:`.entries`), kept current on this node, rebuilt only where their input changed
(:mod:`.shelf`), copied to disk for a web server (:mod:`.files`) and announced to a
WebSub hub (:mod:`.websub`)."""
