from acode_placement.cli import main

main()
