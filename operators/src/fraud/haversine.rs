//! `haversine_km`: the great-circle distance between two points, as an
//! Arrow kernel (the SQL scalar function `haversine_km(lat1, lon1, lat2,
//! lon2)`) and for one pair of points.

use arrow::array::{Array, Float64Array};
use weir_engine::{Result, WeirError};

/// The Earth's mean radius in kilometres used by [`haversine_km`].
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// The largest distance [`haversine_km_value`] can return: half the
/// circumference, `π × 6371 km` ≈ 20 015 km.
pub const MAX_DISTANCE_KM: f64 = std::f64::consts::PI * EARTH_RADIUS_KM;

/// The great-circle distance in kilometres between two points given in
/// degrees (latitude, longitude), on a sphere of radius
/// [`EARTH_RADIUS_KM`]. Not finite if an input is not.
pub fn haversine_km_value(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// Row by row, the great-circle distance in kilometres between
/// `(lat1[i], lon1[i])` and `(lat2[i], lon2[i])` (degrees), NULL where
/// any input is NULL. The four arrays must have one length; an error
/// ([`WeirError::Execution`]) names the lengths otherwise.
pub fn haversine_km(
    lat1: &Float64Array,
    lon1: &Float64Array,
    lat2: &Float64Array,
    lon2: &Float64Array,
) -> Result<Float64Array> {
    let n = lat1.len();
    if lon1.len() != n || lat2.len() != n || lon2.len() != n {
        return Err(WeirError::Execution(format!(
            "haversine_km: arguments have different lengths ({n}, {}, {}, {})",
            lon1.len(),
            lat2.len(),
            lon2.len()
        )));
    }
    let any_null =
        lat1.null_count() + lon1.null_count() + lat2.null_count() + lon2.null_count() > 0;
    let (a, b, c, d) = (lat1.values(), lon1.values(), lat2.values(), lon2.values());
    if !any_null {
        return Ok(Float64Array::from_iter_values(
            (0..n).map(|i| haversine_km_value(a[i], b[i], c[i], d[i])),
        ));
    }
    Ok((0..n)
        .map(|i| {
            (lat1.is_valid(i) && lon1.is_valid(i) && lat2.is_valid(i) && lon2.is_valid(i))
                .then(|| haversine_km_value(a[i], b[i], c[i], d[i]))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // Paris (48.8566, 2.3522) to London (51.5074, -0.1278): ~343.5 km.
        let d = haversine_km_value(48.8566, 2.3522, 51.5074, -0.1278);
        assert!((d - 343.56).abs() < 0.5, "{d}");
        // A quarter of the equator.
        let q = haversine_km_value(0.0, 0.0, 0.0, 90.0);
        assert!((q - MAX_DISTANCE_KM / 2.0).abs() < 1e-9, "{q}");
        // Antipodes.
        let a = haversine_km_value(10.0, 20.0, -10.0, -160.0);
        assert!((a - MAX_DISTANCE_KM).abs() < 1e-3, "{a}");
        assert_eq!(haversine_km_value(1.0, 2.0, 1.0, 2.0), 0.0);
    }

    #[test]
    fn kernel_propagates_nulls_and_checks_lengths() {
        let lat1 = Float64Array::from(vec![Some(0.0), None, Some(48.8566)]);
        let lon1 = Float64Array::from(vec![0.0, 0.0, 2.3522]);
        let lat2 = Float64Array::from(vec![0.0, 0.0, 51.5074]);
        let lon2 = Float64Array::from(vec![90.0, 1.0, -0.1278]);
        let d = haversine_km(&lat1, &lon1, &lat2, &lon2).expect("kernel");
        assert_eq!(d.len(), 3);
        assert!((d.value(0) - 10_007.543).abs() < 0.01, "{}", d.value(0));
        assert!(d.is_null(1));
        assert!((d.value(2) - 343.56).abs() < 0.5);
        let short = Float64Array::from(vec![1.0]);
        let e = haversine_km(&short, &lon1, &lat2, &lon2)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("different lengths (1, 3, 3, 3)"), "{e}");
        let none = haversine_km(&lat1, &lon1, &lat2, &lon2.slice(0, 3)).expect("kernel");
        assert_eq!(none.null_count(), 1);
    }
}
