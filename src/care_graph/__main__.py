"""`python -m care_graph` runs the `care-graph` command."""

from care_graph.cli import main

main()
