//! Redis's geohash arithmetic (`geohash.c`, `geohash_helper.c`): 52-bit interleaved scores,
//! the neighbour boxes a search visits, and the haversine distance, computed the same way so
//! that scores, distances and the order of unsorted results match Redis.

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate of a stored score.
pub const STEP_MAX: u8 = 26;
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }
}

#[derive(Clone, Copy, Debug)]
struct Range {
    min: f64,
    max: f64,
}

const LONG_RANGE: Range = Range { min: LONG_MIN, max: LONG_MAX };
const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };

#[derive(Clone, Copy, Debug)]
struct Area {
    longitude: Range,
    latitude: Range,
}

/// Spreads the 32 bits of `v` to the even bits of the result.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `x` into 32 bits.
fn squash(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// Latitude bits in the even positions, longitude bits in the odd ones.
fn interleave(lat: u32, long: u32) -> u64 {
    spread(lat) | (spread(long) << 1)
}

fn encode_in(long_range: Range, lat_range: Range, longitude: f64, latitude: f64, step: u8) -> Option<HashBits> {
    if !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude) {
        return None;
    }
    if latitude < lat_range.min || latitude > lat_range.max || longitude < long_range.min || longitude > long_range.max {
        return None;
    }
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * (1u64 << step) as f64;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * (1u64 << step) as f64;
    // C converts the offsets to uint32_t, truncating.
    Some(HashBits { bits: interleave(lat_offset as u32, long_offset as u32), step })
}

/// The score of a position (Redis's geohashEncodeWGS84 then geohashAlign52Bits).
pub fn encode_score(longitude: f64, latitude: f64) -> Option<u64> {
    encode_in(LONG_RANGE, LAT_RANGE, longitude, latitude, STEP_MAX).map(|h| h.bits)
}

fn decode(hash: HashBits) -> Area {
    let lat_bits = squash(hash.bits);
    let long_bits = squash(hash.bits >> 1);
    let cells = (1u64 << hash.step) as f64;
    let lat_scale = LAT_RANGE.max - LAT_RANGE.min;
    let long_scale = LONG_RANGE.max - LONG_RANGE.min;
    Area {
        latitude: Range {
            min: LAT_RANGE.min + (lat_bits as f64 * 1.0 / cells) * lat_scale,
            max: LAT_RANGE.min + ((lat_bits as f64 + 1.0) * 1.0 / cells) * lat_scale,
        },
        longitude: Range {
            min: LONG_RANGE.min + (long_bits as f64 * 1.0 / cells) * long_scale,
            max: LONG_RANGE.min + ((long_bits as f64 + 1.0) * 1.0 / cells) * long_scale,
        },
    }
}

/// The position a score stands for: the centre of its cell, clamped to the valid range.
pub fn decode_score(score: f64) -> [f64; 2] {
    let area = decode(HashBits { bits: score as u64, step: STEP_MAX });
    let longitude = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let latitude = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [longitude, latitude]
}

/// The standard 11-character geohash of a score (re-encoded over latitudes -90..90).
pub fn geohash_string(score: f64) -> String {
    const ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [longitude, latitude] = decode_score(score);
    let bits = encode_in(Range { min: -180.0, max: 180.0 }, Range { min: -90.0, max: 90.0 }, longitude, latitude, STEP_MAX).map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            let index = if i == 10 { 0 } else { ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize };
            ALPHABET[index] as char
        })
        .collect()
}

fn deg_rad(degrees: f64) -> f64 {
    degrees * (std::f64::consts::PI / 180.0)
}

fn rad_deg(radians: f64) -> f64 {
    radians / (std::f64::consts::PI / 180.0)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance in meters between two (longitude, latitude) points.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1r, lon2r) = (deg_rad(lon1), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// A search area: a circle or an axis-aligned box around a centre, in the unit's meters.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Radius(f64),
    Box { width: f64, height: f64 },
}

#[derive(Clone, Copy, Debug)]
pub struct Search {
    pub center: [f64; 2],
    pub shape: Shape,
    /// Meters per unit.
    pub conversion: f64,
}

impl Search {
    /// The distance from the centre to (longitude, latitude) when the point is inside.
    pub fn distance_if_within(&self, longitude: f64, latitude: f64) -> Option<f64> {
        let [x1, y1] = self.center;
        match self.shape {
            Shape::Radius(radius) => {
                let d = distance(x1, y1, longitude, latitude);
                (d <= radius * self.conversion).then_some(d)
            }
            Shape::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                if lat_distance(latitude, y1) > height_m / 2.0 {
                    return None;
                }
                if distance(longitude, latitude, x1, latitude) > width_m / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, longitude, latitude))
            }
        }
    }

    fn bounding_box(&self) -> [f64; 4] {
        let [longitude, latitude] = self.center;
        let (height, width) = match self.shape {
            Shape::Radius(r) => (r * self.conversion, r * self.conversion),
            Shape::Box { width, height } => (height * self.conversion / 2.0, width * self.conversion / 2.0),
        };
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude + lat_delta).cos());
        let long_delta_bottom = rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(latitude - lat_delta).cos());
        let southern = latitude < 0.0;
        [
            if southern { longitude - long_delta_bottom } else { longitude - long_delta_top },
            latitude - lat_delta,
            if southern { longitude + long_delta_bottom } else { longitude + long_delta_top },
            latitude + lat_delta,
        ]
    }

    /// The score ranges [min, max) of the boxes a search visits, in Redis's order (centre,
    /// north, south, east, west, north-east, north-west, south-east, south-west), useless
    /// boxes and repeats of the previous box left out.
    pub fn score_ranges(&self) -> Vec<(u64, u64)> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let [longitude, latitude] = self.center;
        let radius_meters = match self.shape {
            Shape::Radius(r) => r,
            Shape::Box { width, height } => ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, latitude);
        let mut hash = encode_in(LONG_RANGE, LAT_RANGE, longitude, latitude, steps).unwrap_or(HashBits { bits: 0, step: steps });
        let mut n = neighbours(hash);
        let mut area = decode(hash);
        let decrease = decode(n[1]).latitude.max < max_lat
            || decode(n[2]).latitude.min > min_lat
            || decode(n[3]).longitude.max < max_lon
            || decode(n[4]).longitude.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            hash = encode_in(LONG_RANGE, LAT_RANGE, longitude, latitude, steps).unwrap_or(HashBits { bits: 0, step: steps });
            n = neighbours(hash);
            area = decode(hash);
        }
        // n: [centre, north, south, east, west, north_east, north_west, south_east, south_west]
        let zero = HashBits::default();
        if steps >= 2 {
            if area.latitude.min < min_lat {
                n[2] = zero;
                n[8] = zero;
                n[7] = zero;
            }
            if area.latitude.max > max_lat {
                n[1] = zero;
                n[5] = zero;
                n[6] = zero;
            }
            if area.longitude.min < min_lon {
                n[4] = zero;
                n[8] = zero;
                n[6] = zero;
            }
            if area.longitude.max > max_lon {
                n[3] = zero;
                n[7] = zero;
                n[5] = zero;
            }
        }
        let mut ranges = Vec::with_capacity(9);
        let mut last: Option<usize> = None;
        for i in 0..9 {
            if n[i].is_zero() {
                continue;
            }
            if let Some(l) = last {
                if l != 0 && n[i] == n[l] {
                    continue;
                }
            }
            let shift = 52 - 2 * n[i].step as u32;
            ranges.push((n[i].bits << shift, (n[i].bits + 1) << shift));
            last = Some(i);
        }
        ranges
    }
}

fn estimate_steps(range_meters: f64, latitude: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&latitude) {
        step -= 1;
        if !(-80.0..=80.0).contains(&latitude) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

fn move_x(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let mut x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

fn move_y(hash: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> (64 - hash.step as u32 * 2);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> (64 - hash.step as u32 * 2);
    hash.bits = x | y;
}

/// [centre, north, south, east, west, north_east, north_west, south_east, south_west].
fn neighbours(hash: HashBits) -> [HashBits; 9] {
    let moved = |dx: i8, dy: i8| {
        let mut h = hash;
        move_x(&mut h, dx);
        move_y(&mut h, dy);
        h
    };
    [hash, moved(0, 1), moved(0, -1), moved(1, 0), moved(-1, 0), moved(1, 1), moved(-1, 1), moved(1, -1), moved(-1, -1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_hashes_match_redis() {
        // From redis-server 7.0: GEOADD g 13.361389 38.115556 Palermo, then GEOPOS and GEOHASH.
        let score = encode_score(13.361389, 38.115556).unwrap();
        assert_eq!(score, 3479099956230698);
        let [lon, lat] = decode_score(score as f64);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(geohash_string(score as f64), "sqc8b49rny0");
        let catania = encode_score(15.087269, 37.502669).unwrap() as f64;
        let [lon2, lat2] = decode_score(catania);
        assert_eq!(format!("{:.4}", distance(lon, lat, lon2, lat2) / 1000.0), "166.2742");
        assert!(encode_score(180.1, 0.0).is_none());
        assert!(encode_score(0.0, 85.06).is_none());
    }

    #[test]
    fn interleaving_round_trips() {
        for (a, b) in [(0u32, 0u32), (1, 0), (0, 1), (0x3ff_ffff, 0x155_5555), (12345, 67890)] {
            let x = interleave(a, b);
            assert_eq!((squash(x), squash(x >> 1)), (a, b));
        }
    }
}
