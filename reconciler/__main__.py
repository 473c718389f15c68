from reconciler import cli

cli.main()
