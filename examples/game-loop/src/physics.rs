//! How the world moves: edit it while the simulation runs.

use crate::World;

// ANCHOR: step
/// One substep: advances every ball by its velocity; a ball that reaches a wall bounces back and
/// scores.
#[hotswap::hot]
pub fn step(world: &mut World) {
    for ball in &mut world.balls {
        ball.x += ball.vx;
        if ball.x <= 0 || ball.x >= world.width - 1 {
            ball.x = ball.x.clamp(0, world.width - 1);
            ball.vx = -ball.vx;
            world.score += 1;
        }
    }
    world.physics.push("bounce-one");
}
// ANCHOR_END: step
