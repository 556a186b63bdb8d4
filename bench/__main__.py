from bench.run import main

if __name__ == "__main__":  # spawn children re-import this module as __mp_main__
    raise SystemExit(main())
