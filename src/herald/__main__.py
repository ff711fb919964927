from herald.composition.entry import main

main()
