"""Ready-made data: the embedded synthetic MyAnimeList data set.

``load_demo()`` gives the small default (about 2,000 users, 1,500 anime, 150,000 ratings) as
:func:`anirec.load_mal` would load it from the written CSV files; ``generate_synthetic`` and
``write_synthetic`` make other sizes, up to the full MyAnimeList scale, with the planted truth.
"""

from anirec.data.synthetic import generate_synthetic, load_demo, write_synthetic

__all__ = ["load_demo", "generate_synthetic", "write_synthetic"]
