from hfa.cli.entry import main

main()
