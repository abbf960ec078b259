from skydriver_api.cli import main

main()
