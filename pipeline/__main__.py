"""`python -m kdaug`: the `kdaug` command."""

from kdaug.cli import main

main()
