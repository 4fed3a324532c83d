"""`python -m localcast` is the `localcast` command."""

from localcast.cli import main

main()
