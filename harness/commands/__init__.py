"""One module per `harness` subcommand (see harness.cli for the protocol)."""
