//! Harness tests of the geo family, with values from redis-server 7.0.

use shoal_resp::Frame;

use crate::testing::check;
use crate::testing::replies::*;

#[test]
fn geoadd_geopos_geodist_geohash_match_redis() {
    check(
        &[
            &["GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"],
            &["GEOPOS", "g", "Palermo", "nope"],
            &["GEODIST", "g", "Palermo", "Catania", "km"],
            &["GEODIST", "g", "Palermo", "Catania"],
            &["GEOHASH", "g", "Palermo", "Catania"],
            &["GEOADD", "g", "200", "100", "m"],
            &["GEOADD", "g", "NX", "1", "2"],
            &["GEODIST", "g", "a", "b", "x"],
            &["GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"],
            &["GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "WITHDIST", "WITHHASH", "COUNT", "1"],
            &["GEOSEARCH", "g", "FROMMEMBER", "nope", "BYBOX", "1", "1", "km"],
            &["GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "WITHDIST"],
            &["GEOSEARCH", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "1", "km", "ANY"],
            &["GEORADIUSBYMEMBER", "missing", "x", "notanumber", "km"],
        ],
        &[
            int(2),
            arr(vec![strings(&["13.36138933897018433", "38.11555639549629859"]), Frame::NullArray]),
            bulk("166.2742"),
            bulk("166274.1516"),
            strings(&["sqc8b49rny0", "sqdtr74hyu0"]),
            err("ERR invalid longitude,latitude pair 200.000000,100.000000"),
            err("ERR syntax error"),
            err("ERR unsupported unit provided. please use M, KM, FT, MI"),
            strings(&["Catania", "Palermo"]),
            arr(vec![arr(vec![bulk("Catania"), bulk("56.4413"), int(3479447370796909)])]),
            err("ERR could not decode requested zset member"),
            err("ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"),
            err("ERR the ANY argument requires COUNT argument"),
            arr(vec![]),
        ],
    );
}

/// Two keys owned by two different cores of the harness.
fn keys_on_two_cores() -> (String, String) {
    let shard = |k: &str| shoal_store::slot::key_shard(k.as_bytes(), crate::testing::SHARDS);
    let first = "geo0".to_string();
    let second = (1..).map(|i| format!("geo{i}")).find(|k| shard(k) != shard(&first)).expect("a key on another core");
    (first, second)
}

#[test]
fn search_stores_across_cores_write_the_destination_or_delete_it() {
    let (src, dst) = keys_on_two_cores();
    check(
        &[
            &["GEOADD", &src, "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"],
            &["GEOSEARCHSTORE", &dst, &src, "FROMMEMBER", "Palermo", "BYRADIUS", "200", "km", "STOREDIST"],
            &["ZRANGE", &dst, "0", "-1", "WITHSCORES"],
            &["GEORADIUS", &src, "15", "37", "200", "km", "STORE", &dst],
            &["ZSCORE", &dst, "Catania"],
            &["GEORADIUSBYMEMBER", &src, "Catania", "1", "km", "STOREDIST", &dst, "COUNT", "1"],
            &["ZRANGE", &dst, "0", "-1", "WITHSCORES"],
            &["GEOSEARCHSTORE", &dst, &src, "FROMLONLAT", "0", "0", "BYBOX", "1", "1", "km"],
            &["EXISTS", &dst],
            &["GEOSEARCHSTORE", &dst, "nokey", "FROMMEMBER", "x", "BYRADIUS", "1", "km"],
        ],
        &[
            int(2),
            int(2),
            arr(vec![bulk("Palermo"), Frame::Double(0.0), bulk("Catania"), Frame::Double(166.27415156960032)]),
            int(2),
            Frame::Double(3479447370796909.0),
            int(1),
            arr(vec![bulk("Catania"), Frame::Double(0.0)]),
            int(0),
            int(0),
            int(0),
        ],
    );
}
