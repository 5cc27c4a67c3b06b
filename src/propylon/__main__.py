"""`python -m propylon`, the same as the `propylon` command."""

from propylon.cli.main import main

if __name__ == "__main__":
    main()
