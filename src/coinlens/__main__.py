from coinlens.cli.app import main

main()
