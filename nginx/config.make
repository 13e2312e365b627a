# Sourced (through the root config.make) by nginx's auto/make after the
# module's objects are listed: the engine, the API layer and the backend
# tables are built by the project's own Makefile (plain C11, compiled
# without nginx's flags).

if [ "$STARLING_LIB" = "$STARLING_BUILD/libstarling.a" ]; then

cat << END                                            >> $NGX_MAKEFILE

$STARLING_LIB: FORCE_STARLING_LIB
	\$(MAKE) -C $STARLING_ROOT lib

# (built by the same make lib)
$STARLING_API_LIB $STARLING_BACKENDS: $STARLING_LIB

.PHONY: FORCE_STARLING_LIB
FORCE_STARLING_LIB:

END

fi
