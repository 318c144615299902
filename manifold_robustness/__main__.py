from manifold_robustness.cli import main

raise SystemExit(main())
