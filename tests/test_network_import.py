"""Re-importing the road network: a truncated extract must not quietly replace a whole one (both stores)."""
import struct

import pytest

from tests import osm_fixtures

SIDE = 80  # 80 × 80 junctions: 12,640 one-segment ways of 100 m


def block_ends(data: bytes) -> list[int]:
    """Byte offsets where each block of a .osm.pbf ends.

    The file is a run of blocks, each a 4-byte big-endian header length, a BlobHeader
    (protobuf: field 3, a varint, is the size of the blob that follows) and the blob.
    """
    ends, pos = [], 0
    while pos < len(data):
        (header_len,) = struct.unpack(">I", data[pos:pos + 4])
        header, i, blob_size = data[pos + 4:pos + 4 + header_len], 0, None
        while i < len(header):
            key, i = _varint(header, i)
            if key & 7 == 2:  # length-delimited: skip it
                length, i = _varint(header, i)
                i += length
            else:
                value, i = _varint(header, i)
                if key >> 3 == 3:
                    blob_size = value
        pos += 4 + header_len + blob_size
        ends.append(pos)
    return ends


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


@pytest.fixture(scope="module")
def grid_files(tmp_path_factory):
    """The whole grid, and the same file cut where its second-to-last block ends (an interrupted download)."""
    folder = tmp_path_factory.mktemp("osm")
    whole = osm_fixtures.write_grid(folder / "grid.osm.pbf", SIDE)
    data = open(whole, "rb").read()
    ends = block_ends(data)
    assert ends[-1] == len(data) and len(ends) >= 4  # header, nodes, and ways in more than one block
    cut = folder / "grid-truncated.osm.pbf"
    cut.write_bytes(data[:ends[-2]])
    return whole, str(cut)


def test_the_truncated_file_reads_as_a_smaller_network(grid_files):
    """libosmium reads a file cut between blocks without complaint: that is the danger."""
    from app.network.osm_import import read_extract

    whole, cut = grid_files
    assert read_extract(whole)[0]["walk"].segment_count == 2 * SIDE * (SIDE - 1)
    assert 0 < read_extract(cut)[0]["walk"].segment_count < 0.8 * 2 * SIDE * (SIDE - 1)


def test_a_truncated_extract_does_not_replace_the_network(cli, store, grid_files):
    whole, cut = grid_files
    first = cli.invoke(args=["network", "import", whole])
    assert first.exit_code == 0, first.output
    tokens = {mode: store.network_token(mode) for mode in ("walk", "ebike")}

    refused = cli.invoke(args=["network", "import", cut])
    assert refused.exit_code != 0
    assert "walk: nodes 6,400 -> 6,400, segments 12,640 -> " in refused.output  # what would change, per mode
    assert "truncated" in refused.output and "--force" in refused.output and "still in use" in refused.output
    assert {mode: store.network_token(mode) for mode in tokens} == tokens
    assert store.load_network("walk").segment_count == 12_640

    forced = cli.invoke(args=["network", "import", "--force", cut])
    assert forced.exit_code == 0, forced.output
    assert all(store.network_token(mode) != token for mode, token in tokens.items())
    assert store.load_network("walk").segment_count < 0.8 * 12_640


def test_a_reimport_of_the_same_size_goes_through_and_says_what_changed(cli, store, grid_files):
    from app.network.osm_import import read_extract

    whole, _ = grid_files
    km = read_extract(whole)[0]["walk"].seg_len.sum() / 1000  # 12,640 blocks of ~100 m
    assert km == pytest.approx(1264, rel=1e-3)
    first = cli.invoke(args=["network", "import", whole])
    assert first.exit_code == 0, first.output
    assert f"walk: nodes 6,400, segments 12,640, road km {km:,.1f} (no network before)" in first.output
    again = cli.invoke(args=["network", "import", whole])
    assert again.exit_code == 0, again.output
    assert "walk: nodes 6,400 -> 6,400, segments 12,640 -> 12,640 (100%), road km " in again.output
