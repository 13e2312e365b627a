#!/usr/bin/perl
# Directives: a good configuration passes nginx -t; bad values are
# rejected with the file:line of the offending directive.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use StarlingTest;

StarlingTest::require_nginx();

my $t = StarlingTest->new(http => <<'EOF2');
    starling_model tiny path={{MODEL260K}} backend=cpu ctx=512 threads=1 max_seqs=4 chat_template=chatml;
    starling_max_tokens 512;
    starling_queue 8 timeout=5s;
EOF2
my ($ok, $out) = $t->test_conf;
ok($ok, 'nginx -t accepts a full configuration') or diag($out);

my @bad = (
    [ 'starling_model tiny;',                          qr/needs path=FILE|invalid number of arguments/ ],
    [ 'starling_model tiny path=/nonexistent/model.gguf;', qr/cannot access "\/nonexistent\/model.gguf"/ ],
    [ 'starling_model tiny path={{MODEL260K}} ctx=x;', qr/invalid starling_model parameter "ctx=x"/ ],
    [ 'starling_model tiny path={{MODEL260K}} backend=tpu;', qr/invalid starling_model parameter "backend=tpu"/ ],
    [ 'starling_model tiny path={{MODEL260K}} chat_template=jinja;', qr/invalid starling_model parameter "chat_template=jinja"/ ],
    [ 'starling_model tiny path={{MODEL260K}} sha256=abc;', qr/invalid starling_model parameter "sha256=abc"/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_model tiny path={{MODELQ8}};", qr/duplicate starling_model "tiny"/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_max_tokens 0;", qr/value must be between 1 and/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue x;", qr/invalid queue size/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue 4 timeout=abc;", qr/invalid queue timeout/ ],
    # bounds, each message naming the directive
    [ "starling_model tiny path={{MODEL260K}};\n    starling_max_tokens 2000000;", qr/"starling_max_tokens" directive value must be between 1 and 1048576/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_max_prompt_tokens -1;", qr/"starling_max_prompt_tokens" directive invalid number/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_max_prompt_tokens 99999999;", qr/"starling_max_prompt_tokens" directive value must be between 0 and 16777216/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_max_prompt_chars 0;", qr/"starling_max_prompt_chars" directive value must be between 1 and 16777216/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue -1;", qr/invalid queue size "-1"/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue 100000;", qr/"starling_queue" size 100000 is out of range: it must be between 0 and 65536/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue 4 timeout=0;", qr/invalid queue timeout "timeout=0"/ ],
    [ "starling_model tiny path={{MODEL260K}};\n    starling_queue 4 timeout=2h;", qr/"starling_queue" timeout "2h" is out of range: it must be between 1ms and 1h/ ],
);

for my $case (@bad) {
    my $b = StarlingTest->new(http => "    $case->[0]\n");
    my ($ok2, $out2) = $b->test_conf;
    ok(!$ok2, "rejected: $case->[0]");
    like($out2, $case->[1], '... with a clear message');
    like($out2, qr/nginx\.conf:\d+/, '... and file:line');
}

my $s = StarlingTest->new(server => "        location / { starling bogus; }\n");
my ($ok3, $out3) = $s->test_conf;
ok(!$ok3, 'unknown surface rejected');
like($out3, qr/unknown starling surface "bogus".*nginx\.conf:\d+/s, '... with file:line');

$s = StarlingTest->new(server => "        location / { starling openai model=nope; }\n");
($ok3, $out3) = $s->test_conf;
ok(!$ok3, 'unknown model rejected');
like($out3, qr/unknown starling model "nope"/, '... by name');

$s = StarlingTest->new(http => '', server => "        location / { starling openai; }\n");
($ok3, $out3) = $s->test_conf;
ok(!$ok3, 'starling without a starling_model rejected');
like($out3, qr/needs a "starling_model"/, '... with a hint');

# a declared pool is used as is
$s = StarlingTest->new(main => 'thread_pool gpu threads=1;',
                       http => "    starling_model tiny path={{MODEL260K}};\n    starling_thread_pool gpu;\n");
($ok3, $out3) = $s->test_conf;
ok($ok3, 'starling_thread_pool with a declared pool') or diag($out3);

# the bounds themselves are accepted
$s = StarlingTest->new(http => "    starling_model tiny path={{MODEL260K}};\n"
                             . "    starling_max_prompt_tokens 0;\n"
                             . "    starling_queue 0 timeout=1h;\n"
                             . "    starling_max_tokens 1048576;\n");
($ok3, $out3) = $s->test_conf;
ok($ok3, 'values at the bounds are accepted') or diag($out3);

done_testing();
