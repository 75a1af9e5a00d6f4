//! Rounds that alternate contenders (a baseline first), so that a drift in
//! the machine's speed between criterion's separate runs cannot skew a
//! ratio: each round times a batch of each contender, and the figure
//! reported is the median of the per-round ratios to the baseline.

use std::time::Instant;

/// One contender: its name and one call of it.
pub struct Contender<'a> {
    name: &'a str,
    run: Box<dyn FnMut() + 'a>,
}

impl<'a> Contender<'a> {
    /// A contender named `name` that `run` calls once.
    pub fn new(name: &'a str, run: impl FnMut() + 'a) -> Contender<'a> {
        Contender {
            name,
            run: Box::new(run),
        }
    }
}

/// What a contender measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Its name.
    pub name: String,
    /// Mean seconds per call over every round.
    pub mean: f64,
    /// Median over the rounds of its time per call divided by the
    /// baseline's in the same round.
    pub median_ratio: f64,
}

/// Runs `rounds` rounds of `batch` calls of each contender in turn (after
/// one warm-up batch each), prints one line per contender under `title`
/// and returns them. The first contender is the baseline.
pub fn interleave(
    title: &str,
    rounds: usize,
    batch: u32,
    contenders: &mut [Contender<'_>],
) -> Vec<Measured> {
    assert!(!contenders.is_empty() && rounds > 0 && batch > 0);
    let time = |c: &mut Contender<'_>| {
        let t = Instant::now();
        for _ in 0..batch {
            (c.run)();
        }
        t.elapsed().as_secs_f64() / f64::from(batch)
    };
    for c in contenders.iter_mut() {
        time(c);
    }
    let mut per_round: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for (i, c) in contenders.iter_mut().enumerate() {
            per_round[i].push(time(c));
        }
    }
    let measured = summarize(contenders, &per_round);
    print(title, &measured);
    measured
}

fn summarize(contenders: &[Contender<'_>], per_round: &[Vec<f64>]) -> Vec<Measured> {
    let baseline = &per_round[0];
    contenders
        .iter()
        .zip(per_round)
        .map(|(c, times)| {
            let ratios: Vec<f64> = times.iter().zip(baseline).map(|(t, b)| t / b).collect();
            Measured {
                name: c.name.to_string(),
                mean: times.iter().sum::<f64>() / times.len() as f64,
                median_ratio: median(ratios),
            }
        })
        .collect()
}

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print(title: &str, measured: &[Measured]) {
    println!("interleaved: {title}");
    let width = measured.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for m in measured {
        println!(
            "  {:<width$}  mean {:>9.2} µs   median ratio to {} {:.2}",
            m.name,
            m.mean * 1e6,
            measured[0].name,
            m.median_ratio
        );
    }
}
