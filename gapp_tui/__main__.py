from gapp_tui.cli import main

main()
