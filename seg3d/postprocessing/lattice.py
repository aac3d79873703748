"""Gaussian filtering in a feature space with a permutohedral lattice, in torch.

The appearance kernel of the dense CRF is a Gaussian over 3 + C dimensions
(position and intensities). Filtering N points with it exactly costs O(N^2);
the permutohedral lattice of Adams, Baek and Davis (2010) does it in O(N d^2):
each point *splats* its value onto the d + 1 vertices of the lattice simplex
enclosing it (barycentric weights), the lattice is *blurred* with a
[1/2, 1, 1/2] kernel along each of its d + 1 axes, and each point *slices* its
result back from the same vertices. Scale, blur and the final constant follow
the implementation Krähenbühl and Koltun ship with their dense CRF, so that the
result matches their reference to rounding.

The lattice is built once per set of points and :meth:`PermutohedralLattice.filter`
reuses it, which is what a mean-field loop needs: each point keeps the index
and weight of its d + 1 vertices, so splatting is d + 1 ``scatter_add_`` calls
and slicing d + 1 gathers, on whichever device the features are on. Vertices
are numbered through a table over packed integer keys, or by sorting them,
instead of a hash table.

References:
    A. Adams, J. Baek, M. A. Davis, "Fast High-Dimensional Filtering Using the
    Permutohedral Lattice", Eurographics 2010.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Packed vertex keys are summed in float64, exact to 53 bits; a lattice whose
# key space needs more is numbered by sorting key rows instead (slower, same
# result).
_MAX_PACKED_BITS = 52

# Vertices are numbered through a table over the key space when it has at most
# this many entries per point (4 int32 entries: 16 bytes a point), or at most
# the minimum; otherwise by sorting.
_TABLE_ENTRIES_PER_POINT = 4
_TABLE_MIN_ENTRIES = 1 << 20

# Points are placed on the lattice this many at a time, so that the dozens of
# temporaries of that step stay in cache (2-3 times faster than one pass).
_CHUNK = 1 << 17


class PermutohedralLattice:
    """A permutohedral lattice built over N points with d features each.

    The filter approximates ``out_i = sum_j exp(-|f_i - f_j|^2 / 2) in_j``, with
    the self term ``j = i`` included, for features ``f`` already divided by the
    kernel's standard deviations. The approximation is the lattice's: its
    effective kernel is a piecewise-linear stand-in for the Gaussian whose
    total weight varies from point to point by tens of percent, which is why
    the CRF normalises every kernel by its own row sums (see ``docs/crf.md``).

    Attributes:
        num_points: N.
        num_features: d.
        num_vertices: M, lattice vertices that received a splat.
    """

    def __init__(self, features: torch.Tensor, *, pack_keys: bool = True) -> None:
        """Build the lattice.

        Args:
            features: ``(d, N)`` float32 point coordinates divided by the
                kernel's standard deviations, one column per point, on any
                device.
            pack_keys: number vertices by packing their integer keys into one
                int64 each (fast); ``False`` forces the row-sorting fallback that
                is otherwise used only when the keys need more than 52 bits.
        """
        if features.ndim != 2 or min(features.shape) < 1:
            raise ValueError(
                f"features must be (d, N), d, N >= 1, not {features.shape}"
            )
        features = features.float()
        self.num_features, self.num_points = (int(n) for n in features.shape)
        frame = _KeyFrame(features) if pack_keys else None
        if frame is not None and frame.bits <= _MAX_PACKED_BITS:
            keys, self._weights = _packed_keys(features, frame)
            self._vertex_ids, unique = _number_packed(keys, frame)
            self.neighbours = _neighbours_packed(unique, frame)
        else:
            self._vertex_ids, unique_rows, self._weights = _numbered_rows(features)
            self.neighbours = _neighbours_rows(unique_rows)
        self.num_vertices = int(self.neighbours.shape[2])
        # Adams et al.'s constant that makes the blurred lattice's response to a
        # point integrate like the Gaussian it stands for.
        self._alpha = 1.0 / (1.0 + 2.0 ** (-self.num_features))

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """Gaussian-filter per-point values through the lattice.

        Args:
            values: ``(L, N)`` float32, L values per point (e.g. one per class).

        Returns:
            ``(L, N)`` float32 filtered values.
        """
        channels = values.shape[0]
        # The last column is an always-zero stand-in for blur neighbours that
        # no point splatted onto.
        lattice = values.new_zeros(channels, self.num_vertices + 1)
        for ids, weights in zip(self._vertex_ids, self._weights, strict=True):
            lattice.scatter_add_(1, ids.expand(channels, -1), values * weights)
        for below, above in self.neighbours:
            blurred = lattice.index_select(1, below) + lattice.index_select(1, above)
            lattice[:, :-1] += 0.5 * blurred
        lattice *= self._alpha

        out = torch.zeros_like(values)
        for ids, weights in zip(self._vertex_ids, self._weights, strict=True):
            out.addcmul_(lattice.index_select(1, ids), weights)
        return out


def _scale(d: int) -> list[float]:
    """Per-feature factors that make the lattice's blur a unit Gaussian.

    The blur of [1/2, 1, 1/2] along d + 1 axes has a known variance (Adams et
    al., section 3.1); the factors, rounded as the reference rounds them, fold
    in the embedding's per-axis norm.
    """
    inverse_std = float(np.float32(math.sqrt(2.0 / 3.0) * (d + 1)))
    return [
        float(np.float32(inverse_std / math.sqrt((i + 2) * (i + 1)))) for i in range(d)
    ]


def _elevate(features: torch.Tensor) -> torch.Tensor:
    """``(d, n)`` -> ``(d + 1, n)`` on the plane where coordinates sum to zero.

    Summed in the reference's order, so that float32 rounding (which decides
    ties between offsets) is the same.
    """
    d, count = features.shape
    elevated = features.new_empty(d + 1, count)
    running = features.new_zeros(count)
    for j, factor in reversed(list(enumerate(_scale(d), start=1))):
        scaled = features[j - 1] * factor
        elevated[j] = running - j * scaled
        running += scaled
    elevated[0] = running
    return elevated


def _elevation_matrix(d: int) -> torch.Tensor:
    """``(d + 1, d)`` float64 matrix of :func:`_elevate`, for bounds."""
    matrix = torch.zeros(d + 1, d, dtype=torch.float64)
    for row in range(d + 1):
        matrix[row, row:] = 1.0
        if row >= 1:
            matrix[row, row - 1] = -row
    return matrix * torch.tensor(_scale(d), dtype=torch.float64)


class _KeyFrame:
    """Mixed-radix packing of lattice vertex keys into one int64.

    Every coordinate of a vertex of colour r (its remainder class) is
    ``r + (d + 1) q`` for an integer q, so a vertex is named by its colour and
    the first d of its q's (the last is fixed by the others). The q's range is
    bounded from the features' range before any point is placed, with a margin
    of three for rounding, the rank wrap, the vertex offsets and the blur's
    neighbours.
    """

    def __init__(self, features: torch.Tensor) -> None:
        d = features.shape[0]
        elevation = _elevation_matrix(d)
        low = features.amin(1).double().cpu()
        high = features.amax(1).double().cpu()
        positive, negative = elevation.clamp(min=0), elevation.clamp(max=0)
        elevated_low = positive @ low + negative @ high
        elevated_high = positive @ high + negative @ low
        self.low = torch.floor(elevated_low[:d] / (d + 1)).long() - 3
        extent = torch.ceil(elevated_high[:d] / (d + 1)).long() + 3 - self.low + 1
        self.stride = torch.cumprod(torch.cat([extent.new_ones(1), extent[:-1]]), 0)
        self.colour_stride = int(torch.prod(extent))
        self.bits = math.log2(self.colour_stride * (d + 1))


def _place(
    features: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Locate each point's enclosing simplex.

    Args:
        features: ``(d, n)`` float32 features, one column per point.

    Returns:
        origin: ``(d + 1, n)`` float32 (integer-valued), the simplex's
            colour-0 vertex divided by d + 1.
        position: ``(d + 1, n)`` int64, d minus each coordinate's rank among
            the point's offsets from that vertex (rank 0 = largest offset);
            vertex r lies d + 1 lower than the origin in the coordinates at
            positions below r.
        weights: ``(d + 1, n)`` float32 barycentric weights of the vertices of
            colours 0..d, summing to 1.
    """
    d = features.shape[0]
    elevated = _elevate(features)  # (d + 1, n)

    # Nearest point with all coordinates multiples of d + 1, then the ordering
    # of the remainders; a point whose rounded coordinates do not sum to zero
    # is brought back by one wrap of its ranks. Kept in float32, which is exact
    # for these small integers and faster than int64 here.
    origin = torch.round(elevated * (1.0 / (d + 1)))
    remainder = elevated - (d + 1) * origin
    rank = _ranks(remainder) + origin.sum(0)
    wrap = torch.div(rank, d + 1, rounding_mode="floor").neg_()
    rank += (d + 1) * wrap
    origin += wrap
    step = (remainder - (d + 1) * wrap) * (1.0 / (d + 1))
    position = (d - rank).long()

    # Each offset, put at its position, gives the weights as differences of
    # neighbours (and what is left to vertex 0).
    ordered = torch.zeros_like(step).scatter_(0, position, step)
    weights = torch.empty_like(step)
    weights[0] = 1.0 + ordered[0] - ordered[d]
    weights[1:] = ordered[1:] - ordered[:-1]
    return origin, position, weights


def _ranks(remainder: torch.Tensor) -> torch.Tensor:
    """``(d + 1, n)`` float rank of each coordinate, largest first, ties by index.

    Of each pair a < b, b ranks below a when ``remainder[a] >= remainder[b]``,
    else a ranks below b; one comparison per pair serves both.
    """
    count = remainder.shape[0]
    rank = torch.zeros_like(remainder)
    for a in range(count):
        for b in range(a + 1, count):
            a_first = (remainder[a] >= remainder[b]).float()
            rank[a] -= a_first
            rank[b] += a_first
    # Start from a's count of later coordinates, as if it came after all of them.
    rank += torch.arange(count - 1, -1, -1, device=remainder.device)[:, None]
    return rank


def _packed_keys(
    features: torch.Tensor, frame: _KeyFrame
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Packed keys, ``(N,)`` per colour (colour not included), and the
    ``(d + 1, N)`` float32 barycentric weights.

    Vertex r of a simplex is its origin plus r in every coordinate, less d + 1
    in the r coordinates of highest rank (smallest offsets); packed, its key is
    the origin's less the strides of those coordinates (the last has none).
    Sums of strides are taken in float64, exact below 2^53; keys are stored as
    int32 when they fit.
    """
    d, num_points = features.shape
    device = features.device
    dtype = torch.int32 if frame.colour_stride < 2**31 else torch.int64
    keys = [torch.empty(num_points, dtype=dtype, device=device) for _ in range(d + 1)]
    weights = torch.empty(d + 1, num_points, device=device)
    stride = frame.stride.double().to(device)
    offset = float(frame.stride.double() @ frame.low.double())
    stride_of_coordinate = torch.cat([stride, stride.new_zeros(1)])[:, None]
    for start in range(0, num_points, _CHUNK):
        part = slice(start, start + _CHUNK)
        origin, position, weights[:, part] = _place(features[:, part])
        base = stride @ origin[:d].double() - offset  # (n,)
        stride_at = torch.zeros_like(origin, dtype=torch.float64)
        stride_at.scatter_(0, position, stride_of_coordinate.expand_as(stride_at))
        for colour in range(d + 1):
            keys[colour][part] = base
            base -= stride_at[colour]
    return keys, weights


def _sort_points(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Points in the stable order of their (non-negative) keys.

    Returns:
        order: ``(N,)`` int64 point indices.
        ordered: ``(N,)`` int64 keys in that order.
    """
    count = keys.numel()
    shift = max(1, (count - 1).bit_length())
    if keys.device.type == "cpu" and int(keys.max()).bit_length() + shift <= 62:
        # numpy's vectorised sort of plain integers is several times faster than
        # any argsort here; appending the index makes every key distinct, so the
        # unstable sort is stable.
        combined = keys.to(torch.int64, copy=True)
        combined <<= shift
        combined |= torch.arange(count)
        combined.numpy().sort()  # in place, on the tensor's memory
        order = combined & ((1 << shift) - 1)
        combined >>= shift
        return order, combined
    ordered, order = torch.sort(keys.long(), stable=True)
    return order, ordered


def _number_packed(
    keys: list[torch.Tensor], frame: _KeyFrame
) -> tuple[torch.Tensor, torch.Tensor]:
    """Number the vertices, colour by colour, in the order of their keys.

    Colours never share a vertex, and the colour is the most significant digit
    of a packed key with colour, so the per-colour key lists concatenate into
    one sorted list of all vertices. Where a colour's key space is no larger
    than a few entries per point, a table over it marks the keys in use and
    its running count numbers them (about three times faster than sorting);
    otherwise the keys are sorted.

    Args:
        keys: per colour, ``(N,)`` packed keys without colour; consumed.
        frame: the packing.

    Returns:
        vertex_ids: ``(d + 1, N)`` int64 vertex of each point for each colour.
        unique: ``(M,)`` int64 sorted packed keys of the vertices, with colour.
    """
    num_colours, num_points = len(keys), keys[0].numel()
    device = keys[0].device
    vertex_ids = torch.empty(num_colours, num_points, dtype=torch.long, device=device)
    table = None
    table_limit = max(_TABLE_ENTRIES_PER_POINT * num_points, _TABLE_MIN_ENTRIES)
    if frame.colour_stride <= table_limit:
        table = torch.empty(frame.colour_stride, dtype=torch.int32, device=device)
    unique = []
    num_vertices = 0
    for colour in range(num_colours):
        # Each colour's keys are dropped once numbered, to keep memory down.
        colour_keys = keys.pop(0)
        if table is None:
            order, ordered = _sort_points(colour_keys)
            first = torch.ones_like(ordered, dtype=torch.bool)
            first[1:] = ordered[1:] != ordered[:-1]
            vertex_ids[colour].scatter_(0, order, torch.cumsum(first, 0))
            colour_unique = ordered[first]
        else:
            colour_keys = colour_keys.long()
            table.zero_().index_fill_(0, colour_keys, 1)
            running = torch.cumsum(table, 0, dtype=torch.int32)
            vertex_ids[colour] = running.index_select(0, colour_keys)
            colour_unique = table.nonzero().squeeze(1)
        vertex_ids[colour] += num_vertices - 1
        unique.append(colour_unique + colour * frame.colour_stride)
        num_vertices += colour_unique.numel()
    return vertex_ids, torch.cat(unique)


def _neighbours_packed(unique: torch.Tensor, frame: _KeyFrame) -> torch.Tensor:
    """Blur neighbours of each vertex along each lattice axis.

    A step down axis j < d takes a colour-r vertex to colour r - 1 with q_j one
    higher (and every q one lower when r wraps from 0 to d); axis d changes
    only the colour (and the q's when it wraps). A step up is the inverse.

    Args:
        unique: ``(M,)`` int64 sorted packed keys, colour included.

    Returns:
        ``(d + 1, 2, M)`` int64 indices of the vertex one step down and one up
        each axis, or M where no point splatted onto that vertex.
    """
    d = frame.stride.numel()
    colour = torch.div(unique, frame.colour_stride, rounding_mode="floor")
    within = unique - colour * frame.colour_stride
    below = ((colour - 1) % (d + 1)) * frame.colour_stride + within
    below -= frame.stride.sum() * (colour == 0)
    axis_step = torch.cat([frame.stride, frame.stride.new_zeros(1)]).tolist()
    down = torch.stack([_lookup(unique, below + step) for step in axis_step])
    return torch.stack([down, _inverse(down)], dim=1)


def _inverse(down: torch.Tensor) -> torch.Tensor:
    """Steps up from steps down: ``up[j, down[j, v]] = v`` where ``v`` has one."""
    num_axes, num_vertices = down.shape
    up = down.new_full((num_axes, num_vertices + 1), num_vertices)
    vertices = torch.arange(num_vertices, device=down.device).expand(num_axes, -1)
    # Missing neighbours (index M) all land in the extra last column.
    up.scatter_(1, down, vertices)
    return up[:, :num_vertices]


def _lookup(sorted_keys: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Position of each query in ``sorted_keys``, or its length where absent."""
    position = torch.searchsorted(sorted_keys, queries)
    found = sorted_keys[position.clamp(max=sorted_keys.numel() - 1)] == queries
    return torch.where(found, position, sorted_keys.numel())


def _numbered_rows(
    features: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vertices numbered by a unique over key rows ``(colour, q_0..q_{d-1})``;
    slower than packing, for keys too wide to pack.

    Returns:
        vertex_ids: ``(d + 1, N)`` int64 vertex of each point per colour.
        unique_rows: ``(M, d + 1)`` int64 sorted key rows (colour first).
        weights: ``(d + 1, N)`` float32 barycentric weights.
    """
    d, num_points = features.shape
    origin, position, weights = _place(features)
    colour = torch.arange(d + 1, device=features.device).view(d + 1, 1, 1)
    q = origin[None, :d].long() - (position[None, :d] < colour).long()  # (d + 1, d, N)
    rows = torch.cat([colour.expand(-1, 1, num_points), q], dim=1)
    rows = rows.transpose(1, 2).reshape(-1, d + 1)
    unique_rows, inverse = torch.unique(rows, dim=0, return_inverse=True)
    return inverse.view(d + 1, num_points), unique_rows, weights


def _neighbours_rows(unique: torch.Tensor) -> torch.Tensor:
    """As :func:`_neighbours_packed`, for key rows, by one more unique."""
    num_vertices, width = unique.shape
    d = width - 1
    colour, q = unique[:, :1], unique[:, 1:]
    below = torch.cat([torch.remainder(colour - 1, d + 1), q - (colour == 0).long()], 1)
    candidates = [unique]
    for axis in range(d + 1):
        step = torch.zeros(width, dtype=torch.long, device=unique.device)
        if axis < d:
            step[axis + 1] = 1
        candidates.append(below + step)
    _, numbers = torch.unique(torch.cat(candidates), dim=0, return_inverse=True)
    # The first M candidates are the vertices themselves.
    vertex_of_number = torch.full_like(numbers, num_vertices)
    vertex_of_number[numbers[:num_vertices]] = torch.arange(
        num_vertices, device=unique.device
    )
    down = vertex_of_number[numbers[num_vertices:]].view(d + 1, num_vertices)
    return torch.stack([down, _inverse(down)], dim=1)
