//! Prints the EXPLAIN of a pipeline file, or its compile error:
//! `cargo run -p kappa-sql --example explain_file -- pipelines/clickstream.sql`.

fn main() {
    let path = std::env::args().nth(1).expect("usage: explain_file FILE");
    match kappa_sql::compile_file(&path) {
        Ok(plan) => print!("{}", kappa_sql::explain(&plan)),
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    }
}
