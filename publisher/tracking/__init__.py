"""What is counted of readers, when the operator turns it on: clicks per link per digest.

``links`` rewrites a digest's links to signed redirects once per digest (never per
recipient); ``counts`` keeps and reads the counts.  Nothing here records who clicked.
"""
