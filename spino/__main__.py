from spino.cli import main

raise SystemExit(main())
