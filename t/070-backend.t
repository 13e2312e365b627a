#!/usr/bin/perl
# backend=auto runs on whatever the machine has (CPU fallback without a
# GPU, with a [warn] saying why); backend=cuda either runs on the GPU or is
# refused by `nginx -t` (and start-up) with the reason at file:line — the
# CUDA probe runs in a short-lived child, never in the master. Greedy
# output of the CUDA backend, when there is one, equals the CPU backend's.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use StarlingTest;

StarlingTest::require_nginx();

# is there a usable CUDA device? ask nginx -t with a backend=cuda model
my $probe = StarlingTest->new(http => <<'EOF2');
    starling_model cuda path={{MODEL260K}} backend=cuda;
EOF2
my ($probe_ok, $probe_out) = $probe->test_conf;
my $have_gpu = $probe_ok;
if (!$have_gpu) {
    like($probe_out, qr/\[emerg\].*backend=cuda but no usable CUDA device: .+ in \S+nginx\.conf:\d+/,
         'backend=cuda without a GPU: nginx -t fails with the reason at file:line');
}

my $t = StarlingTest->new(http => ($have_gpu ? <<'EOF2' : <<'EOF4'), server => <<'EOF3');
    starling_model cpu path={{MODEL260K}} backend=cpu;
    starling_model auto path={{MODEL260K}} backend=auto;
    starling_model cuda path={{MODEL260K}} backend=cuda;
EOF2
    starling_model cpu path={{MODEL260K}} backend=cpu;
    starling_model auto path={{MODEL260K}} backend=auto;
    starling_model cuda path={{MODEL260K}} backend=auto;
EOF4
        location /cpu/ { starling worker model=cpu; }
        location /auto/ { starling worker model=auto; }
        location /cuda/ { starling worker model=cuda; }
        location / { starling worker; }
EOF3
$t->start(no_wait => 1);

sub settled {
    my ($path) = @_;
    my $deadline = time + 30;
    my $r;
    do {
        $r = $t->request('GET', $path);
        return $r if $r && $r->{json} && $r->{json}{status} ne 'loading';
        sleep 0.05;
    } while (time < $deadline);
    return $r;
}

my $cpu = settled('/cpu/health')->{json};
is($cpu->{backend}, 'cpu', 'backend=cpu runs on the CPU');
is($cpu->{memory_type}, 'cpu', 'memory_type cpu');

my $auto = settled('/auto/health')->{json};
is($auto->{status}, 'ok', 'backend=auto always loads');
like($auto->{backend}, qr/^(cpu|cuda)$/, "backend=auto chose $auto->{backend}");

my $cuda = settled('/cuda/health');
if ($have_gpu && $cuda->{json}{status} eq 'ok') {
    is($cuda->{json}{backend}, 'cuda', 'backend=cuda on a GPU');
    is($cuda->{json}{memory_type}, 'cuda', 'memory_type cuda');
    ok($cuda->{json}{vram_bytes} > 0, 'vram_bytes reported');
    my @text;
    for my $m ('cpu', 'cuda') {
        my (undef, undef, $ev) = $t->stream("/$m/execute",
            { job_id => "g-$m", prompt => 'Once upon a time', max_tokens => 32, temperature => 0 });
        push @text, join ',', map { $_->{json}{id} } grep { ($_->{event} // '') eq 'token' } @$ev;
    }
    is($text[1], $text[0], 'greedy ids: CUDA == CPU');
} else {
    is($auto->{backend}, 'cpu', 'no GPU: backend=auto runs on the CPU');
    like($t->error_log, qr/\[warn\].*model "auto": backend auto: using the CPU \(.+\)/,
         '... with a [warn] line saying why');
}

$t->stop;
my @bad = grep { /\[(alert|crit)\]|AddressSanitizer|runtime error:/ } split /\n/, $t->error_log;
ok(!@bad, 'no [alert]/[crit]/sanitizer lines') or diag(join "\n", @bad);

done_testing();
