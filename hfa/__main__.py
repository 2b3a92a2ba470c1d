from hfa.cli.app import main

main()
