"""The fixed RBF prototypes: stylised 7x12 bitmaps of the digits, pixels +1 (ink) / -1.

The paper (section II-B, Fig. 3) draws each output class as a 7x12 bitmap so that F6's 84
units can be read as a small picture and confusable digits get distant codes. The exact
bitmaps are not published; these are drawn here in the same spirit ('#' = +1, '.' = -1).
"""
import numpy as np

BITMAP_ROWS, BITMAP_COLS = 12, 7

DIGIT_BITMAPS = (
    """
    .......
    ..###..
    .#...#.
    #.....#
    #.....#
    #.....#
    #.....#
    #.....#
    #.....#
    .#...#.
    ..###..
    .......
    """,
    """
    .......
    ...#...
    ..##...
    .#.#...
    ...#...
    ...#...
    ...#...
    ...#...
    ...#...
    ...#...
    .#####.
    .......
    """,
    """
    .......
    .####..
    #....#.
    .....#.
    .....#.
    ....#..
    ...#...
    ..#....
    .#.....
    #......
    ######.
    .......
    """,
    """
    .......
    #####..
    .....#.
    .....#.
    .....#.
    ..###..
    .....#.
    ......#
    ......#
    .....#.
    #####..
    .......
    """,
    """
    .......
    ....#..
    ...##..
    ..#.#..
    .#..#..
    #...#..
    #######
    ....#..
    ....#..
    ....#..
    ....#..
    .......
    """,
    """
    .......
    ######.
    #......
    #......
    #......
    #####..
    .....#.
    ......#
    ......#
    .....#.
    #####..
    .......
    """,
    """
    .......
    ...###.
    ..#....
    .#.....
    #......
    #.###..
    ##...#.
    #.....#
    #.....#
    .#...#.
    ..###..
    .......
    """,
    """
    .......
    #######
    ......#
    .....#.
    ....#..
    ....#..
    ...#...
    ...#...
    ..#....
    ..#....
    ..#....
    .......
    """,
    """
    .......
    ..###..
    .#...#.
    .#...#.
    .#...#.
    ..###..
    .#...#.
    #.....#
    #.....#
    .#...#.
    ..###..
    .......
    """,
    """
    .......
    ..###..
    .#...#.
    #.....#
    #.....#
    .#...##
    ..###.#
    ......#
    .....#.
    ....#..
    .###...
    .......
    """,
)


def parse_bitmap(art):
    """ASCII art ('#' ink, '.' background) -> (12, 7) array of +1 / -1."""
    rows = [line.strip() for line in art.strip().splitlines()]
    if len(rows) != BITMAP_ROWS or any(len(r) != BITMAP_COLS or set(r) - set("#.") for r in rows):
        raise ValueError(f"a digit bitmap must be {BITMAP_ROWS} rows of {BITMAP_COLS} '#'/'.'")
    return np.array([[1.0 if ch == "#" else -1.0 for ch in r] for r in rows])


def rbf_prototypes():
    """The (10, 84) prototype matrix P: row i is digit i's bitmap read row by row."""
    return np.stack([parse_bitmap(art).reshape(-1) for art in DIGIT_BITMAPS])
