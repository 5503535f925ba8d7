//! How the world looks: edit it while the simulation runs.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::World;

// ANCHOR: persist
hotswap::persist! {
    /// Frames drawn since the program started, counted by every version of `frame`.
    static DRAWN: AtomicU64 = AtomicU64::new(0);
}
// ANCHOR_END: persist

/// One line showing the field, the score and which code drew it.
#[hotswap::hot]
pub fn frame(world: &World, number: u64) -> String {
    let drawn = DRAWN.fetch_add(1, Ordering::Relaxed) + 1;
    let mut field = vec![' '; usize::try_from(world.width).unwrap_or(0)];
    for ball in &world.balls {
        if let Some(cell) = usize::try_from(ball.x).ok().and_then(|x| field.get_mut(x)) {
            *cell = 'o';
        }
    }
    let field: String = field.into_iter().collect();
    format!(
        "frame={number} gen={} drawn={drawn} score={} physics={} render=render-one |{field}|",
        hotswap::generation(),
        world.score,
        world.physics.join("+"),
    )
}
