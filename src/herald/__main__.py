from herald.entry import main

main()
